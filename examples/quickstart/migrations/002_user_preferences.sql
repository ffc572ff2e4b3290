-- Description: Per-user preferences
-- Depends: 001

CREATE TABLE user_preferences (
    user_id INTEGER PRIMARY KEY REFERENCES users (id),
    theme TEXT NOT NULL DEFAULT 'light'
);

-- strata:down
DROP TABLE user_preferences;
