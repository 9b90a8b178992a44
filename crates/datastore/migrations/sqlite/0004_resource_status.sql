-- Status of cert-manager resources, SQLite flavour. Keep in step with
-- ../postgres/0004_resource_status.sql.

-- The status the Certificate controller keeps for a Certificate, Issuer or ClusterIssuer, and
-- its CertificateRequest records, keyed like configuration objects. Not configuration: writes do
-- not move the store revision. `version` grows by one with every write (compare and set between
-- replicas); `lease_owner` / `lease_until_ms` say which replica is issuing for the object.
CREATE TABLE resource_status (
    kind TEXT NOT NULL,
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    body TEXT NOT NULL,
    version INTEGER NOT NULL,
    lease_owner TEXT NOT NULL DEFAULT '',
    lease_until_ms INTEGER NOT NULL DEFAULT 0,
    updated_at_ms INTEGER NOT NULL,
    PRIMARY KEY (kind, namespace, name)
);
