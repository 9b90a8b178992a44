-- Revoked certificates, PostgreSQL flavour. Keep in step with ../sqlite/0005_revocations.sql.
-- (0004 is reserved for the certificate controller.)

-- One row per revoked certificate, kept until the certificate's notAfter (then pruned: an
-- expired certificate is refused anyway). Rows are inserted in the same transaction that
-- moves the configuration revision, so every agent's configuration stream carries them.
CREATE TABLE revocations (
    serial_hex TEXT COLLATE "C" PRIMARY KEY,
    spiffe_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    revoked_at BIGINT NOT NULL,
    not_after BIGINT NOT NULL,
    issued_by TEXT NOT NULL,
    entry_id TEXT,
    agent_id TEXT
);
CREATE INDEX revocations_not_after ON revocations (not_after);
CREATE INDEX issued_certs_entry_id ON issued_certs (entry_id);
CREATE INDEX issued_certs_agent_id ON issued_certs (agent_id);
