\set cid random_exponential(1, 50000, 8)
SELECT id, status, total, created_at FROM shop.orders WHERE customer_id = :cid ORDER BY created_at DESC LIMIT 20;
