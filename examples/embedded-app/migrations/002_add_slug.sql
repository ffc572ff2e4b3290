-- Description: a slug per note, filled by code migration 003
ALTER TABLE notes ADD COLUMN slug TEXT;

-- strata:down
ALTER TABLE notes DROP COLUMN slug;
