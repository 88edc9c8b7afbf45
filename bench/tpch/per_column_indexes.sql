-- The "one index per useful column" baseline, written by hand: a single-column btree on
-- every column the 22 queries filter or join on -- the advice a per-column tool
-- (Supabase index_advisor, Dexter-style per-column suggestions) converges to.
-- Left out: columns used only in LIKE '%...%' (o_comment, s_comment, p_name in Q9),
-- in expressions (substring(c_phone)), or in GROUP BY / ORDER BY / SELECT only; no btree
-- can serve those predicates.

-- lineitem: joins (Q3-Q5, Q7-Q10, Q12, Q14, Q17-Q21) and filters (Q1, Q3, Q6, Q10, Q12, Q14, Q15, Q19, Q20)
CREATE INDEX ON lineitem (l_orderkey);
CREATE INDEX ON lineitem (l_partkey);
CREATE INDEX ON lineitem (l_suppkey);
CREATE INDEX ON lineitem (l_shipdate);
CREATE INDEX ON lineitem (l_commitdate);
CREATE INDEX ON lineitem (l_receiptdate);
CREATE INDEX ON lineitem (l_returnflag);
CREATE INDEX ON lineitem (l_quantity);
CREATE INDEX ON lineitem (l_discount);
CREATE INDEX ON lineitem (l_shipmode);
CREATE INDEX ON lineitem (l_shipinstruct);

-- orders: joins and o_orderdate ranges (Q3-Q5, Q7, Q8, Q10), o_orderstatus (Q21)
CREATE INDEX ON orders (o_orderkey);
CREATE INDEX ON orders (o_custkey);
CREATE INDEX ON orders (o_orderdate);
CREATE INDEX ON orders (o_orderstatus);

-- customer: joins, c_mktsegment (Q3), c_acctbal (Q22)
CREATE INDEX ON customer (c_custkey);
CREATE INDEX ON customer (c_nationkey);
CREATE INDEX ON customer (c_mktsegment);
CREATE INDEX ON customer (c_acctbal);

-- part: join, p_size (Q2, Q16, Q19), p_type = (Q8), p_brand (Q16, Q17, Q19), p_container (Q17, Q19), p_name prefix (Q20)
CREATE INDEX ON part (p_partkey);
CREATE INDEX ON part (p_size);
CREATE INDEX ON part (p_type);
CREATE INDEX ON part (p_brand);
CREATE INDEX ON part (p_container);
CREATE INDEX ON part (p_name);

-- partsupp: joins, ps_supplycost = (Q2), ps_availqty > (Q20)
CREATE INDEX ON partsupp (ps_partkey);
CREATE INDEX ON partsupp (ps_suppkey);
CREATE INDEX ON partsupp (ps_supplycost);
CREATE INDEX ON partsupp (ps_availqty);

-- supplier, nation, region: joins and name filters
CREATE INDEX ON supplier (s_suppkey);
CREATE INDEX ON supplier (s_nationkey);
CREATE INDEX ON nation (n_nationkey);
CREATE INDEX ON nation (n_regionkey);
CREATE INDEX ON nation (n_name);
CREATE INDEX ON region (r_regionkey);
CREATE INDEX ON region (r_name);
