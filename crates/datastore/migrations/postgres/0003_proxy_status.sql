-- Proxy status reports, PostgreSQL flavour. Keep in step with ../sqlite/0003_proxy_status.sql.

-- The latest status of each proxy, as the server replica its agent talks to stored it, so
-- that every replica can answer. `data` is opaque here (the server's encoding).
CREATE TABLE proxy_status (
    agent_id TEXT COLLATE "C" NOT NULL,
    proxy_id TEXT COLLATE "C" NOT NULL,
    data BYTEA NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (agent_id, proxy_id)
);
CREATE INDEX proxy_status_updated_at ON proxy_status (updated_at);
