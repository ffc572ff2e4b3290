-- Description: Find a user's posts quickly
CREATE INDEX posts_user_id ON posts (user_id);
