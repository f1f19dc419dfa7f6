-- The fence of a group commit as a function, so that it can ride inside the batch's ledger
-- statement (a CTE every write of that statement reads from) instead of costing a round trip of
-- its own: a batch of money alone is then one autocommitted statement again, fence and all. Any
-- other fenced batch calls it right after `BEGIN` (store/src/postgres.rs, `begin_fenced`).
--
-- It takes transaction-scoped advisory locks: each shard's shared (class 28527, which a
-- takeover takes exclusively), then each account's exclusively (class 28528), each list in key
-- order. Then it checks that `node`
-- still owns every `(shard, epoch)` given. It is VOLATILE, so that its check reads with a
-- snapshot taken after its locks (a VOLATILE function's statements take their own), and a
-- takeover that committed while it waited for a shard's lock is seen. A lease lost raises
-- SQLSTATE OR001 with the leases still held, as `shard:epoch,…`, in its DETAIL: the statement,
-- and its transaction, write nothing.
CREATE FUNCTION onramp_fence(node TEXT, shards INT[], epochs BIGINT[], accounts INT[])
RETURNS INT LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    wanted INT;
    held TEXT[];
BEGIN
    PERFORM count(*) FROM (
        SELECT pg_advisory_xact_lock_shared(28527, s)
        FROM (SELECT DISTINCT s FROM unnest(shards) AS u(s) ORDER BY s) AS o
    ) AS l;
    PERFORM count(*) FROM (
        SELECT pg_advisory_xact_lock(28528, a)
        FROM (SELECT DISTINCT a FROM unnest(accounts) AS u(a) ORDER BY a) AS o
    ) AS l;
    SELECT count(*) INTO wanted FROM (SELECT DISTINCT * FROM unnest(shards, epochs)) AS w;
    SELECT array_agg(DISTINCT c.shard || ':' || c.epoch) INTO held
    FROM cluster_shards AS c
    JOIN unnest(shards, epochs) AS w(shard, epoch) ON w.shard = c.shard AND w.epoch = c.epoch
    WHERE c.owner = node;
    IF coalesce(cardinality(held), 0) <> wanted THEN
        RAISE EXCEPTION 'a lease of this commit was taken over'
            USING ERRCODE = 'OR001', DETAIL = coalesce(array_to_string(held, ','), '');
    END IF;
    RETURN wanted;
END
$$;

