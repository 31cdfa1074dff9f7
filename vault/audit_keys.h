/*
 * The audit keys file (state_dir/audit-key.pem): the Ed25519 public key of
 * every version of the vault's audit key, oldest first, as PEM "PUBLIC KEY"
 * blocks.  `vaultctl audit verify` trusts the keys in it; a rotation of the
 * audit key appends the new one (and the log's handover record vouches for
 * it, so a copy holding only the first key still verifies everything).
 */
#ifndef SV_AUDIT_KEYS_H
#define SV_AUDIT_KEYS_H

#include <stddef.h>
#include <stdint.h>

/* Most keys a file may hold, and its largest size in bytes. */
#define AUDIT_PUBS_MAX	    64
#define AUDIT_PUBS_FILE_MAX (64 * 1024)

/*
 * Read every key of the file at path into pubs (room for AUDIT_PUBS_MAX),
 * their number in *n (at least 1).  SV_ENOTFOUND if the file is missing,
 * SV_EINVAL (saying which block) if it holds anything but Ed25519 public keys
 * in PEM, none, or more than AUDIT_PUBS_MAX.
 */
int audit_pubs_load(const char *path, uint8_t (*pubs)[32], size_t *n);

/*
 * Append pub to the file at path (created if missing) unless it is there
 * already; the file is replaced atomically (mode 0644: public keys).
 */
int audit_pubs_add(const char *path, const uint8_t pub[32]);

#endif
