-- "The next post I publish": a comment campaign armed at `next_post_after` listens on the
-- first post the account publishes at or after that time. Meta sends no webhook when a post
-- is published, so the worker binds `next_post_media` when a comment arrives on a post it
-- does not know, from the account's media list (the earliest post since arming).
alter table campaigns
    add column next_post_after timestamptz,
    add column next_post_media text;

alter table campaigns add constraint campaigns_next_post_check check (
    (next_post_after is null and next_post_media is null)
    or (next_post_after is not null and trigger = 'comment' and media_ids = '{}'
        and (next_post_media is null
             or (next_post_media <> '' and next_post_media !~ '\s')))
);
