\set cid random(1, 50000)
SELECT id, email, country FROM shop.customers WHERE id = :cid;
