-- Status of cert-manager resources, PostgreSQL flavour. Keep in step with
-- ../sqlite/0004_resource_status.sql.

-- The status the Certificate controller keeps for a Certificate, Issuer or ClusterIssuer, and
-- its CertificateRequest records, keyed like configuration objects. Not configuration: writes do
-- not move the store revision. `version` grows by one with every write (compare and set between
-- replicas); `lease_owner` / `lease_until_ms` say which replica is issuing for the object.
CREATE TABLE resource_status (
    kind TEXT COLLATE "C" NOT NULL,
    namespace TEXT COLLATE "C" NOT NULL,
    name TEXT COLLATE "C" NOT NULL,
    body TEXT NOT NULL,
    version BIGINT NOT NULL,
    lease_owner TEXT NOT NULL DEFAULT '',
    lease_until_ms BIGINT NOT NULL DEFAULT 0,
    updated_at_ms BIGINT NOT NULL,
    PRIMARY KEY (kind, namespace, name)
);
