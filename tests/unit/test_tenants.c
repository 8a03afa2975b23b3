/* Unit tests of the tenants file (common/tenants.c): the example of issue 21
 * as written, [defaults] inheritance, lookups by token, certificate and id,
 * and every error with its line. */
#include "tests/unit/check.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/tenants.h"

static const char example[] = "[defaults]\n"
			      "events-per-second = 20000\n"
			      "bytes-per-second  = 8M\n"
			      "max-connections   = 200\n"
			      "spool-quota       = 256M\n"
			      "\n"
			      "[tenant acme]\n"
			      "token-sha256 = 2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae\n"
			      "token-sha256 = fcde2b2edba56bf408601fb721fe9b5c338d10ee429ea04fae5511b68fbf8fb9\n"
			      "events-per-second = 2000\n"
			      "\n"
			      "[tenant globex]\n"
			      "cert-subject = CN=globex-edge\n";

static void test_example(void)
{
	current_test = "example";
	unsigned errors = 9;
	struct qs_tenants *ts = qs_tenants_parse(example, strlen(example), "t", "", false, &errors);
	CHECK(ts != NULL && errors == 0);
	if (!ts)
		return;
	CHECK_EQ(ts->n, 2);
	const struct qs_tenant *acme = &ts->t[0], *globex = &ts->t[1];
	CHECK_STR(acme->name, "acme");
	CHECK_EQ(acme->ntokens, 2);
	CHECK_EQ_U64(acme->lim.events_per_second, 2000);      /* its own */
	CHECK_EQ_U64(acme->lim.bytes_per_second, 8u << 20);   /* from [defaults] */
	CHECK_EQ_U64(globex->lim.events_per_second, 20000);
	CHECK_EQ_U64(globex->lim.spool_quota, 256u << 20);
	CHECK_EQ_U64(globex->lim.max_connections, 200);
	uint64_t foo = 0, bar = 0, cert = 0, none = 0;
	CHECK(qs_tenants_by_token(ts, "foo", 3, &foo) == acme); /* sha256("foo") is the first hash */
	CHECK(qs_tenants_by_token(ts, "bar", 3, &bar) == acme); /* and sha256("bar") the second: rotation */
	CHECK(qs_tenants_by_token(ts, "fo", 2, &none) == NULL);
	CHECK(qs_tenants_by_cert(ts, "CN=globex-edge", NULL, 0, &cert) == globex);
	CHECK(qs_tenants_by_cert(ts, "CN=globex", NULL, 0, &none) == NULL);
	/* credential ids: each names its credential, and only its tenant has it */
	CHECK_EQ_U64(foo, 0x2c26b46b68ffc68full);
	CHECK(foo != bar && qs_tenant_has_credential(acme, foo) && qs_tenant_has_credential(acme, bar));
	CHECK(qs_tenant_has_credential(globex, cert) && !qs_tenant_has_credential(acme, cert));
	CHECK(!qs_tenant_has_credential(globex, foo));
	CHECK(qs_tenants_by_id(ts, qs_tenant_id("globex")) == globex);
	CHECK(qs_tenants_by_id(ts, qs_tenant_id("initech")) == NULL);
	CHECK(qs_tenant_id("acme") != qs_tenant_id("globex") && qs_tenant_id("acme") != 0);
	qs_tenants_free(ts);
}

/* Each broken file, and the message its first error must give. */
static void test_errors(void)
{
	static const struct {
		const char *text, *want;
	} cases[] = {
		{"[tenant a]\ncolour = blue\n", "t:2: unknown key 'colour'"},
		{"[tenant a]\n[tenant a]\n", "t:2: duplicate tenant 'a' (first at line 1)"},
		{"[tenant a]\nevents-per-second = lots\n", "t:2: events-per-second: bad number 'lots'"},
		{"[tenant a]\nbytes-per-second = 8X\n", "t:2: bytes-per-second: bad number '8X'"},
		{"[tenant a]\ntoken-sha256 = 12ab\n", "t:2: malformed token-sha256"},
		{"[tenant a]\ntoken-sha256 = 2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ax\n",
		 "t:2: malformed token-sha256"},
		{"[tenant a]\ntoken-sha256 = 2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae\n"
		 "[tenant b]\ntoken-sha256 = 2C26B46B68FFC68FF99B453C1D30413413422D706483BFA0F98A5E886266E7AE\n",
		 "t:4: token shared by tenants 'a' and 'b'"},
		{"events-per-second = 1\n", "t:1: 'events-per-second' outside a section"},
		{"[defaults]\ntoken-sha256 = 2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae\n",
		 "t:2: token-sha256 belongs in a [tenant NAME] section"},
		{"[tenant a b]\n", "t:1: bad tenant name 'a b'"},
		{"[tenants a]\n", "t:1: unknown section [tenants a]"},
		{"[tenant a]\non-limit = drop\n", "t:2: on-limit: 'drop'"},
		{"[tenant a]\nmax-connections = 5\nmax-connections = 6\n", "t:3: max-connections given twice"},
		{"[tenant a]\ncert-subject = CN=x\n[tenant b]\ncert-subject = CN=x\n", "t:4: cert-subject 'CN=x' already"},
		{"[tenant a]\nno equals sign\n", "t:2: expected KEY = VALUE"},
		{"[tenant a]\nx\0y = 1\n", "t:2: NUL byte in the line"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		current_test = cases[i].want;
		size_t len = strlen(cases[i].text);
		if (strstr(cases[i].want, "NUL")) /* the text goes on after its NUL byte */
			len += 1 + strlen(cases[i].text + len + 1);
		char out[512] = "";
		FILE *err = tmpfile();
		int saved = dup(2);
		dup2(fileno(err), 2);
		unsigned errors = 0;
		struct qs_tenants *ts = qs_tenants_parse(cases[i].text, len, "t", "", true, &errors);
		fflush(stderr);
		dup2(saved, 2);
		close(saved);
		rewind(err);
		size_t n = fread(out, 1, sizeof(out) - 1, err);
		out[n] = 0;
		fclose(err);
		CHECK(ts == NULL && errors >= 1);
		CHECK(!strncmp(out, cases[i].want, strlen(cases[i].want)));
		if (strncmp(out, cases[i].want, strlen(cases[i].want)))
			fprintf(stderr, "  got: %s", out);
		qs_tenants_free(ts);
	}
}

/* 500 tenants: each found by its id (through the sorted index), and an id
 * no tenant has is not. */
static void test_many(void)
{
	current_test = "many tenants by id";
	size_t cap = 500 * 24, len = 0;
	char *text = malloc(cap);
	for (int i = 0; i < 500; i++)
		len += (size_t)snprintf(text + len, cap - len, "[tenant t%d]\n", i);
	unsigned errors = 0;
	struct qs_tenants *ts = qs_tenants_parse(text, len, "t", "", false, &errors);
	CHECK(ts != NULL && errors == 0);
	size_t found = 0;
	for (int i = 0; ts && i < 500; i++) {
		char name[16];
		snprintf(name, sizeof(name), "t%d", i);
		const struct qs_tenant *t = qs_tenants_by_id(ts, qs_tenant_id(name));
		found += t && !strcmp(t->name, name);
	}
	CHECK_EQ_U64(found, 500);
	CHECK(qs_tenants_by_id(ts, qs_tenant_id("t500")) == NULL);
	qs_tenants_free(ts);
	free(text);
}

int main(void)
{
	test_example();
	test_errors();
	test_many();
	return check_report();
}
