/* The acceptor's memory of recent attempts' answers (acceptor/attempts.c): a
 * copy of an attempt (the same DCID from the same address and port) finds
 * its answer, anything else does not; answers are forgotten after the
 * memory; a table overfilled many times over stays bounded and keeps the
 * newest answers. */
#include <arpa/inet.h>
#include <stdlib.h>
#include <time.h>

#include "acceptor/acc.h"
#include "check.h"

static const char REFUSED[] = "busy: too many handshakes, retry later";

static struct sockaddr_storage addr(const char *text, uint16_t port)
{
	struct sockaddr_storage ss = {0};
	struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
	if (inet_pton(AF_INET, text, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		v4->sin_port = htons(port);
	} else if (inet_pton(AF_INET6, text, &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		v6->sin6_port = htons(port);
	}
	return ss;
}

static ngtcp2_pkt_hd header(uint32_t n)
{
	ngtcp2_pkt_hd hd;
	memset(&hd, 0, sizeof(hd));
	hd.dcid.datalen = 18;
	for (size_t i = 0; i < hd.dcid.datalen; i++)
		hd.dcid.data[i] = (uint8_t)(n >> (8 * (i % 4))) ^ (uint8_t)i;
	return hd;
}

static const struct acc_attempt_slot *seen(struct acc *a, uint32_t n, const char *ip, uint16_t port)
{
	ngtcp2_pkt_hd hd = header(n);
	struct sockaddr_storage ss = addr(ip, port);
	return acc_attempt_seen(a, &hd, (struct sockaddr *)&ss);
}

static void note(struct acc *a, uint32_t n, const char *ip, uint16_t port, const char *reason)
{
	ngtcp2_pkt_hd hd = header(n);
	struct sockaddr_storage ss = addr(ip, port);
	acc_attempt_note(a, &hd, (struct sockaddr *)&ss, reason);
}

static void test_copies(void)
{
	current_test = "a copy finds its answer, others do not";
	struct acc a;
	memset(&a, 0, sizeof(a));
	CHECK_EQ(acc_attempts_init(&a), 0);
	CHECK(seen(&a, 1, "10.0.0.1", 4433) == NULL);
	note(&a, 1, "10.0.0.1", 4433, REFUSED);
	note(&a, 2, "2001:db8::1", 4433, NULL);
	const struct acc_attempt_slot *s = seen(&a, 1, "10.0.0.1", 4433);
	CHECK(s != NULL && acc_attempt_reason(s) == REFUSED);
	s = seen(&a, 2, "2001:db8::1", 4433);
	CHECK(s != NULL && acc_attempt_reason(s) == NULL); /* a Retry */
	CHECK(seen(&a, 1, "10.0.0.1", 4434) == NULL);      /* another port */
	CHECK(seen(&a, 1, "10.0.0.2", 4433) == NULL);      /* another address */
	CHECK(seen(&a, 3, "10.0.0.1", 4433) == NULL);      /* another DCID */
	CHECK(seen(&a, 2, "2001:db8::2", 4433) == NULL);
	note(&a, 1, "10.0.0.1", 4433, NULL); /* answered again: the newest answer counts */
	s = seen(&a, 1, "10.0.0.1", 4433);
	CHECK(s != NULL && acc_attempt_reason(s) == NULL);
	acc_attempts_free(&a);
}

static void test_forgotten(void)
{
	current_test = "answers are forgotten after the memory";
	struct acc a;
	memset(&a, 0, sizeof(a));
	CHECK_EQ(acc_attempts_init(&a), 0);
	CHECK_EQ(a.attempts.memory_ms, 5000u);
	a.attempts.memory_ms = 50;
	note(&a, 7, "10.0.0.1", 1000, REFUSED);
	CHECK(seen(&a, 7, "10.0.0.1", 1000) != NULL);
	struct timespec ts = {0, 80 * 1000000};
	nanosleep(&ts, NULL);
	CHECK(seen(&a, 7, "10.0.0.1", 1000) == NULL);
	acc_attempts_free(&a);
}

static void test_overfilled(void)
{
	current_test = "overfilled: bounded, the newest kept";
	struct acc a;
	memset(&a, 0, sizeof(a));
	CHECK_EQ(acc_attempts_init(&a), 0);
	const uint32_t total = 400000, recent = 1000; /* six times the table */
	for (uint32_t n = 0; n < total; n++)
		note(&a, n, "10.1.2.3", (uint16_t)(n % 60000 + 1), REFUSED);
	unsigned found = 0, old = 0;
	for (uint32_t n = total - recent; n < total; n++)
		found += seen(&a, n, "10.1.2.3", (uint16_t)(n % 60000 + 1)) != NULL;
	for (uint32_t n = 0; n < recent; n++)
		old += seen(&a, n, "10.1.2.3", (uint16_t)(n % 60000 + 1)) != NULL;
	printf("  of the newest %u answers %u kept; of the oldest %u, %u\n", recent, found, recent, old);
	CHECK(found >= recent * 99 / 100);
	CHECK(old <= recent / 10);
	acc_attempts_free(&a);
}

int main(void)
{
	test_copies();
	test_forgotten();
	test_overfilled();
	return check_report();
}
