-- A transfer keeps the recipient as its answer named them (`to` of its `201`), so that the
-- same request given again with its Idempotency-Key answers the same, and is recognised by the
-- email it was sent to, even after the recipient signs in with another email or name.
-- Transfers of before are given their recipient's name and email of now, the nearest we have.
ALTER TABLE transfers ADD COLUMN to_name TEXT NOT NULL DEFAULT '',
                      ADD COLUMN to_email TEXT NOT NULL DEFAULT '';
UPDATE transfers AS t SET to_name = u.name, to_email = u.email
FROM users AS u WHERE u.id = t.to_user;
ALTER TABLE transfers ALTER COLUMN to_name DROP DEFAULT,
                      ALTER COLUMN to_email DROP DEFAULT;
