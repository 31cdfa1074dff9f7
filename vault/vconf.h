/*
 * vaultd / vaultctl configuration: a libconfig file, or the embedded
 * development defaults (a SoftHSM2 token and SQLite under ./state).
 *
 * Relative paths in a file are relative to the file's directory; in the
 * embedded defaults they are relative to the working directory.
 */
#ifndef SV_VCONF_H
#define SV_VCONF_H

#include <limits.h>

#include "hsm.h"

#define VCONF_DEFAULT_STATE "state"
#define VCONF_DEFAULT_TOKEN "shadowvault"

#define VCONF_LISTEN_DEFAULT "127.0.0.1:8443"
#define VCONF_ENROLL_DEFAULT "127.0.0.1:8444"
#define VCONF_MAX_TLS_NAMES  16

struct vconf {
	char path[PATH_MAX]; /* config file, or "(embedded defaults)" */
	int embedded;	     /* 1 when no file was read */
	char state_dir[PATH_MAX];
	char db_path[PATH_MAX]; /* state_dir/state.db */
	char module[PATH_MAX];
	char token[33];
	char pin_file[PATH_MAX];
	char so_pin_file[PATH_MAX];   /* only for a token vaultctl init creates */
	char softhsm2_conf[PATH_MAX]; /* empty when unset */
	struct hsm_config hsm;	      /* points into the fields above */

	/* vaultd */
	char listen[128];	 /* mTLS API "host:port" */
	char enroll_listen[128]; /* enrolment and health, no client certificate */
	char tls_cert[PATH_MAX]; /* vault TLS certificate (default state_dir/tls/server.pem) */
	char tls_key[PATH_MAX];	 /* its key file (default state_dir/tls/server.key) */
	char *tls_names[VCONF_MAX_TLS_NAMES]; /* names in the certificate vaultctl init makes */
	int ntls_names;
	int tls_renew_days;	 /* the shadow CA reissues tls_cert this many days before it expires
				    (0: the last 30 days or last third, common/renewal.h) */
	char ca_cert[PATH_MAX];	 /* shadow CA certificates (state_dir/ca.pem) */
	char ca_links[PATH_MAX]; /* each newer CA certified by the one before (ca-links.pem) */
	char policy_file[PATH_MAX];  /* default state_dir/policies.conf */
	char admin_socket[PATH_MAX]; /* default state_dir/admin.sock */
	char audit_file[PATH_MAX];   /* default state_dir/audit.log */
	char audit_pub[PATH_MAX];    /* state_dir/audit-key.pem: checkpoint verification key */
	char pid_file[PATH_MAX];     /* default state_dir/vaultd.pid */
	char user[64];		     /* netproc drops to this user when started as root */
	int audit_checkpoint_records;
	int audit_checkpoint_seconds;
	int shadow_cert_days;
	int shadow_renew_days;		 /* 0: the last 30 days or last third (common/renewal.h) */
	int max_pending;		 /* requests in flight to the key process */
	int max_connections;		 /* open client connections in netproc */
	int max_connections_per_address; /* of those, from one address (IPv6: /64) */
	int enroll_per_minute;		 /* enrolment attempts, all clients together */
	int enroll_per_minute_per_address;	  /* of those, from one address (IPv6: /64) */
	int tls_signs_per_second;		  /* handshake signatures by the key process */
	int request_timeout;			  /* seconds */
	int sandbox;				  /* seccomp filter in netproc */
	char *metrics_allow[VCONF_MAX_TLS_NAMES]; /* peer addresses allowed to GET /metrics */
	int nmetrics_allow;
};

/* 1 if the vault's TLS key is a key in its token (tls.key is a pkcs11: URI). */
int vconf_tls_in_token(const struct vconf *c);

/* Free what vconf_load allocated (the string lists). */
void vconf_free(struct vconf *c);

/*
 * Load path, or the embedded defaults when path is NULL.  Unknown settings,
 * wrong types and missing files are SV_ECONFIG errors naming file and line.
 */
int vconf_load(const char *path, struct vconf *out);

/*
 * Which file to use when the user gave none: $SHADOWVAULT_CONFIG, then
 * SV_DEFAULT_CONFIG if it exists, else NULL (embedded defaults).
 */
const char *vconf_default_path(void);

#endif
