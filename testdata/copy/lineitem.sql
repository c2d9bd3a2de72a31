-- 20,000 rows of the lineitem-shaped benchmark table (pgarrow_testkit::fixtures::lineitem_sql).
-- lineitem: 20000
-- query:
SELECT * FROM lineitem ORDER BY l_orderkey, l_linenumber
