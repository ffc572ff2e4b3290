-- The migration the crate documentation's examples embed.
CREATE TABLE notes (id INTEGER PRIMARY KEY, title TEXT NOT NULL);

-- strata:down
DROP TABLE notes;
