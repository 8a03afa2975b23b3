/* The acceptor's per-source table (acceptor/srclimit.c): sources are IPv4
 * addresses or IPv6 /64s, the connection limit holds, the handshake rate has
 * its burst, and a spray of source addresses never grows the table past its
 * cap nor makes it forget a source that has connections. */
#include <arpa/inet.h>
#include <stdlib.h>
#include <time.h>

#include "acceptor/acc.h"
#include "check.h"

static struct sockaddr_storage addr(const char *text)
{
	struct sockaddr_storage ss = {0};
	struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
	if (inet_pton(AF_INET, text, &v4->sin_addr) == 1)
		v4->sin_family = AF_INET;
	else if (inet_pton(AF_INET6, text, &v6->sin6_addr) == 1)
		v6->sin6_family = AF_INET6;
	return ss;
}

static const char *check_src(struct acc *a, const char *text)
{
	struct sockaddr_storage ss = addr(text);
	int32_t idx;
	return acc_src_check(a, (struct sockaddr *)&ss, &idx);
}

static int32_t admit(struct acc *a, const char *text)
{
	struct sockaddr_storage ss = addr(text);
	return acc_src_admit(a, (struct sockaddr *)&ss);
}

static void setup(struct acc *a, struct qs_config *cfg, unsigned m, unsigned per_source, unsigned rate)
{
	memset(a, 0, sizeof(*a));
	memset(cfg, 0, sizeof(*cfg));
	cfg->acceptors = 1;
	cfg->max_connections = m;
	cfg->max_conns_per_source = per_source;
	cfg->max_handshakes_per_source = rate;
	a->cfg = cfg;
	CHECK_EQ(acc_src_init(a), 0);
}

static void test_connections_and_prefixes(void)
{
	current_test = "connections per source, IPv6 /64, v4-mapped";
	struct acc a;
	struct qs_config cfg;
	setup(&a, &cfg, 100, 3, 0);
	int32_t held[3];
	for (int i = 0; i < 3; i++) {
		CHECK(check_src(&a, "10.0.0.1") == NULL);
		held[i] = admit(&a, "10.0.0.1");
		CHECK(held[i] >= 0);
	}
	const char *why = check_src(&a, "10.0.0.1");
	CHECK(why && strstr(why, "busy") && strstr(why, "too many connections"));
	CHECK(check_src(&a, "::ffff:10.0.0.1") != NULL); /* the same IPv4 host through a dual-stack socket */
	CHECK(check_src(&a, "10.0.0.2") == NULL);
	for (int i = 0; i < 3; i++)
		admit(&a, i % 2 ? "2001:db8:0:7::1" : "2001:db8:0:7:ffff:1:2:3");
	CHECK(check_src(&a, "2001:db8:0:7::99") != NULL); /* one /64 */
	CHECK(check_src(&a, "2001:db8:0:8::1") == NULL);  /* the next /64 */
	acc_src_release(&a, held[0]);
	CHECK(check_src(&a, "10.0.0.1") == NULL);
	acc_src_free(&a);
}

/* 200,000 sources that each connect once and leave: the table stays within
 * its cap (the acceptor's share of -m + 4,096 idle sources), and a source
 * with connections is never the one forgotten. */
static void test_spray_bounded(void)
{
	current_test = "a spray of sources stays within the table's cap";
	struct acc a;
	struct qs_config cfg;
	setup(&a, &cfg, 100, 2, 1000000);
	admit(&a, "192.0.2.1");
	admit(&a, "192.0.2.1");
	char text[64];
	for (unsigned i = 0; i < 200000; i++) {
		snprintf(text, sizeof(text), "10.%u.%u.%u", i >> 16, (i >> 8) & 255, i & 255);
		int32_t idx = admit(&a, text);
		CHECK(idx >= 0 || !"admitted");
		acc_src_release(&a, idx);
		if (a.src.used > a.src.cap)
			break;
	}
	CHECK(a.src.used <= a.src.cap);
	CHECK_EQ(a.src.cap, 100 + 4096);
	CHECK(check_src(&a, "192.0.2.1") != NULL); /* still counted at its limit */
	acc_src_free(&a);
}

/* --max-handshakes-per-source 1: a burst of 2, then refused until it refills. */
static void test_handshake_rate(void)
{
	current_test = "handshake rate with a burst";
	struct acc a;
	struct qs_config cfg;
	for (int attempt = 0; attempt < 5; attempt++) {
		setup(&a, &cfg, 100, 0, 1);
		uint64_t t0 = qs_now_ns();
		bool first = check_src(&a, "10.1.1.1") == NULL;
		admit(&a, "10.1.1.1");
		bool second = check_src(&a, "10.1.1.1") == NULL;
		admit(&a, "10.1.1.1");
		const char *third = check_src(&a, "10.1.1.1");
		bool other = check_src(&a, "10.1.1.2") == NULL;
		uint64_t took = qs_now_ns() - t0;
		acc_src_free(&a);
		if (took > 500000000ull)
			continue; /* the bucket may have refilled meanwhile: try again */
		CHECK(first && second && other);
		CHECK(third && strstr(third, "too many new connections"));
		return;
	}
	CHECK(!"the checks never ran within 0.5 s");
}

int main(void)
{
	test_connections_and_prefixes();
	test_spray_bounded();
	test_handshake_rate();
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
