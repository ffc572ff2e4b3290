-- Description: notes, the application's one table
CREATE TABLE notes (
    id INTEGER PRIMARY KEY,
    title TEXT NOT NULL,
    body TEXT NOT NULL DEFAULT ''
);
INSERT INTO notes (id, title, body) VALUES (1, 'Welcome', 'strata applied this at start-up');

-- strata:down
DROP TABLE notes;
