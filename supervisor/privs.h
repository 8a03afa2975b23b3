#ifndef QS_PRIVS_H
#define QS_PRIVS_H

#include <stddef.h>
#include <sys/types.h>

struct qs_config;

/* The user children run as: --user, else "quicstash" when that user exists,
 * else "nobody". Only meaningful when the supervisor runs as root. */
const char *qs_child_user(const struct qs_config *cfg, char *buf, size_t len);

/* As root: makes dir exist and belong to user (and, with files, the regular
 * files directly inside it: a spool written by an earlier root run). */
int qs_own_dir(const char *dir, const char *user, int with_files);

/* Keeps only the capabilities the supervisor still needs to start children
 * (setuid/setgid, chroot, network namespaces, chown, signalling them,
 * rebinding privileged ports, BPF socket steering, reaching the children's
 * directories before they drop root); drops the rest. */
void qs_supervisor_drop_caps(void);

#endif
