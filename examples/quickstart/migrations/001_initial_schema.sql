-- Migration: 001_initial_schema.sql
-- Description: Users and their posts
-- Created: 2024-01-01T00:00:00Z

-- strata:up
CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE TABLE posts (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users (id),
    title TEXT NOT NULL,
    body TEXT
);

-- strata:down
DROP TABLE posts;
DROP TABLE users;
