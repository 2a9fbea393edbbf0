-- The operator API lists calls newest first with a keyset cursor (started_at, id):
-- GET /api/calls reads one range of this index per page.
CREATE INDEX call_by_started ON call (started_at, id);
