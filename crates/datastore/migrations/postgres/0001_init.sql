-- Sigil datastore schema, PostgreSQL flavour. Keep in step with ../sqlite/0001_init.sql:
-- same tables, columns and indexes; only the types differ.

-- One row: the store-wide revision, bumped in the same transaction as every entry, agent and
-- bundle change.
CREATE TABLE store_meta (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    revision BIGINT NOT NULL
);
INSERT INTO store_meta (id, revision) VALUES (1, 0);

-- Registration entries. `selectors` and `federates_with` are JSON copies of the child tables
-- (written in the same transaction) so that a listing is one query; the child tables exist
-- for filtering. `unique_key` is sha256 over (spiffe_id, parent_id, sorted selectors).
--
-- Each child row carries `set_size`, the size of its owner's whole set, so that a selector
-- match (exact, subset, superset, any) is answered from one covering index: look up the given
-- members, group by owner, compare the count of hits with the given size or with `set_size`.
CREATE TABLE entries (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    unique_key TEXT NOT NULL UNIQUE,
    spiffe_id TEXT NOT NULL,
    parent_id TEXT NOT NULL,
    selectors TEXT NOT NULL,
    x509_svid_ttl BIGINT NOT NULL,
    jwt_svid_ttl BIGINT NOT NULL,
    dns_names TEXT NOT NULL,
    federates_with TEXT NOT NULL,
    admin BOOLEAN NOT NULL,
    downstream BOOLEAN NOT NULL,
    expires_at BIGINT,
    hint TEXT NOT NULL,
    store_svid BOOLEAN NOT NULL,
    revision_number BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX entries_spiffe_id ON entries (spiffe_id);
CREATE INDEX entries_parent_id ON entries (parent_id);
CREATE INDEX entries_hint ON entries (hint);
CREATE INDEX entries_expires_at ON entries (expires_at);

CREATE TABLE entry_selectors (
    entry_seq BIGINT NOT NULL REFERENCES entries (seq) ON DELETE CASCADE,
    sel_type TEXT NOT NULL,
    sel_value TEXT NOT NULL,
    set_size BIGINT NOT NULL,
    PRIMARY KEY (entry_seq, sel_type, sel_value)
);
CREATE INDEX entry_selectors_match ON entry_selectors (sel_type, sel_value, entry_seq, set_size);

CREATE TABLE entry_federates_with (
    entry_seq BIGINT NOT NULL REFERENCES entries (seq) ON DELETE CASCADE,
    trust_domain TEXT NOT NULL,
    set_size BIGINT NOT NULL,
    PRIMARY KEY (entry_seq, trust_domain)
);
CREATE INDEX entry_federates_with_match ON entry_federates_with (trust_domain, entry_seq, set_size);

-- Attested agents (nodes). Their selectors live in node_selectors, keyed by SPIFFE ID and
-- without a foreign key, as in SPIRE: selectors may be set before the agent row exists.
CREATE TABLE agents (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    spiffe_id TEXT NOT NULL UNIQUE,
    attestation_type TEXT NOT NULL,
    cert_serial TEXT NOT NULL,
    cert_not_after BIGINT NOT NULL,
    new_cert_serial TEXT,
    new_cert_not_after BIGINT,
    banned BOOLEAN NOT NULL,
    can_reattest BOOLEAN NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX agents_attestation_type ON agents (attestation_type);
CREATE INDEX agents_cert_not_after ON agents (cert_not_after);

CREATE TABLE node_selectors (
    spiffe_id TEXT NOT NULL,
    sel_type TEXT NOT NULL,
    sel_value TEXT NOT NULL,
    set_size BIGINT NOT NULL,
    PRIMARY KEY (spiffe_id, sel_type, sel_value)
);
CREATE INDEX node_selectors_match ON node_selectors (sel_type, sel_value, spiffe_id, set_size);

-- Join tokens are bearer secrets: only their sha256 is stored, so a copy of the database
-- does not hand out usable tokens.
CREATE TABLE join_tokens (
    token_hash TEXT PRIMARY KEY,
    spiffe_id TEXT,
    expires_at BIGINT NOT NULL
);
CREATE INDEX join_tokens_expires_at ON join_tokens (expires_at);

-- Trust bundles (own and federated); `data` is the SPIFFE bundle JSON, opaque here.
CREATE TABLE bundles (
    trust_domain TEXT PRIMARY KEY,
    data BYTEA NOT NULL,
    sequence BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE ca_journals (
    server_id TEXT PRIMARY KEY,
    data BYTEA NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE issued_certs (
    serial_hex TEXT PRIMARY KEY,
    spiffe_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    issued_by TEXT NOT NULL,
    agent_id TEXT,
    entry_id TEXT,
    not_after BIGINT NOT NULL,
    issued_at BIGINT NOT NULL
);
CREATE INDEX issued_certs_not_after ON issued_certs (not_after);
