/* Receive moderation's wait (acceptor/udp.c, acc_gather_wait_us): it runs from
 * the newest packet's arrival, so a client's next burst is read just after it
 * comes (the whole burst at once), never later than the full wait from now. */
#include <stdio.h>

#include "acceptor/acc.h"
#include "check.h"

#define MS 1000000ull /* ns */

int main(void)
{
	uint64_t now = 1700000000ull * 1000 * MS;
	/* the newest packet came 150 us ago: 850 us left of a 1 ms wait */
	CHECK(acc_gather_wait_us(1000, now - 150000, now) == 850);
	/* just now: the full wait */
	CHECK(acc_gather_wait_us(1000, now, now) == 1000);
	/* no timestamp, one older than the wait, or a clock step back: the full wait */
	CHECK(acc_gather_wait_us(1000, 0, now) == 1000);
	CHECK(acc_gather_wait_us(1000, now - 3 * MS, now) == 1000);
	CHECK(acc_gather_wait_us(1000, now + MS, now) == 1000);
	/* never longer than asked */
	for (uint64_t age = 0; age < 2 * MS; age += 7919)
		CHECK(acc_gather_wait_us(1000, now - age, now) <= 1000);
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
