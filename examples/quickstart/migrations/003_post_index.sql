-- Description: Find a user's posts quickly
-- Depends: 001
CREATE INDEX posts_user_id ON posts (user_id);
