#ifndef QS_SHIPPER_SANDBOX_POLICY_H
#define QS_SHIPPER_SANDBOX_POLICY_H

struct qs_config;

/* Chroot into the runtime directory and the unprivileged user; before the
 * spool is opened (through a descriptor taken earlier), so every file it
 * creates belongs to that user. Sets *ep_dir to the directory the ipc
 * endpoints are reached through afterwards. 0 or -1 (logged). */
int shipper_sandbox_enter(const struct qs_config *cfg, const char **ep_dir);
/* The seccomp allow-list: spool file operations and the outbound connection. */
int shipper_seccomp(void);

#endif
