/* A child confines itself as its role's entry in the role table says
 * (roles/roles.h): first qs_confine_enter() once it has opened what it needs
 * from the file system (network namespace, chroot into the runtime directory,
 * the unprivileged user, no-new-privs, dumpable), then qs_confine_seccomp()
 * once every socket it needs exists (the system-call allow-list). qs_confine()
 * does both at once. Each returns 0, or -1 with the reason logged. */
#ifndef QS_ROLES_CONFINE_H
#define QS_ROLES_CONFINE_H

struct qs_config;
struct qs_role_def;

/* The process's role, set once by the --role dispatch (roles/main.c) before
 * the role's entry function runs. */
void qs_confine_init(const struct qs_role_def *def);
/* Sets *rundir to the directory the runtime directory's files (ipc endpoints,
 * the keyholder's socket) are reached through afterwards: "" when chrooted into it. */
int qs_confine_enter(const struct qs_config *cfg, const char **rundir);
int qs_confine_seccomp(void);
int qs_confine(const struct qs_config *cfg, const char **rundir);

#endif
