-- Mesh configuration objects, SQLite flavour. Keep in step with ../postgres/0002_config.sql.

-- The store-wide revision of the last configuration change, written in the same transaction.
ALTER TABLE store_meta ADD COLUMN config_revision INTEGER NOT NULL DEFAULT 0;

-- Istio and cert-manager resources: `body` is the object's JSON text, opaque here. `spec_hash`
-- is the caller's digest of the spec; `generation` grows when it changes. `revision` is the
-- store-wide revision of the object's last change. Text compares in byte order (BINARY), so
-- listings are ordered alike on both backends.
CREATE TABLE config_objects (
    kind TEXT NOT NULL,
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    api_version TEXT NOT NULL,
    body TEXT NOT NULL,
    spec_hash TEXT NOT NULL,
    generation INTEGER NOT NULL,
    uid TEXT NOT NULL UNIQUE,
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    revision INTEGER NOT NULL,
    PRIMARY KEY (kind, namespace, name)
);
CREATE INDEX config_objects_namespace ON config_objects (namespace, kind, name);
