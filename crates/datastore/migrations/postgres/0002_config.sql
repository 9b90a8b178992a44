-- Mesh configuration objects, PostgreSQL flavour. Keep in step with ../sqlite/0002_config.sql.

-- The store-wide revision of the last configuration change, written in the same transaction.
ALTER TABLE store_meta ADD COLUMN config_revision BIGINT NOT NULL DEFAULT 0;

-- Istio and cert-manager resources: `body` is the object's JSON text, opaque here. `spec_hash`
-- is the caller's digest of the spec; `generation` grows when it changes. `revision` is the
-- store-wide revision of the object's last change. The key columns use the "C" collation (byte
-- order), as SQLite does, so listings are ordered alike on both backends whatever the
-- database's default collation.
CREATE TABLE config_objects (
    kind TEXT COLLATE "C" NOT NULL,
    namespace TEXT COLLATE "C" NOT NULL,
    name TEXT COLLATE "C" NOT NULL,
    api_version TEXT NOT NULL,
    body TEXT NOT NULL,
    spec_hash TEXT NOT NULL,
    generation BIGINT NOT NULL,
    uid TEXT NOT NULL UNIQUE,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    revision BIGINT NOT NULL,
    PRIMARY KEY (kind, namespace, name)
);
CREATE INDEX config_objects_namespace ON config_objects (namespace, kind, name);
