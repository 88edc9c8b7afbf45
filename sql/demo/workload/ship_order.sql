\set oid random(1, 800000)
UPDATE shop.orders SET status = 'shipped' WHERE id = :oid AND status = 'open';
