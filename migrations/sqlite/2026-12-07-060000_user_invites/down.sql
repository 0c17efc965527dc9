DROP TABLE user_invites;
