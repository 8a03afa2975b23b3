#ifndef QS_SHIPPER_SANDBOX_POLICY_H
#define QS_SHIPPER_SANDBOX_POLICY_H

struct qs_config;

/* The unprivileged user; before the spool is opened, so every file it
 * creates belongs to that user. 0 or -1 (logged). */
int shipper_sandbox_enter(const struct qs_config *cfg);
/* The seccomp allow-list: spool file operations and the outbound connection. */
int shipper_seccomp(void);

#endif
