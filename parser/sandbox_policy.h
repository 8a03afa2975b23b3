#ifndef QS_PARSER_SANDBOX_POLICY_H
#define QS_PARSER_SANDBOX_POLICY_H

struct qs_config;

/* Namespace, chroot and user; before any ZeroMQ connect. Sets *ep_dir to the
 * directory the endpoints are reached through afterwards. 0 or -1 (logged). */
int parser_sandbox_enter(const struct qs_config *cfg, const char **ep_dir);
/* The seccomp allow-list; once every socket exists. 0 or -1 (logged). */
int parser_seccomp(void);

#endif
