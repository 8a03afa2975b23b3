#ifndef QS_KEYHOLDER_H
#define QS_KEYHOLDER_H

struct qs_config;

/* The keyholder: the only process that reads the TLS private key. It signs
 * handshakes for the acceptors (ipc/keysign.h) and does nothing else. */
int keyholder_main(const struct qs_config *cfg);

#endif
