SELECT c.country, date_trunc('month', o.created_at) AS month, count(*) AS orders, sum(o.total) AS revenue
FROM shop.orders o JOIN shop.customers c ON c.id = o.customer_id
WHERE o.status <> 'cancelled'
GROUP BY 1, 2 ORDER BY revenue DESC LIMIT 50;
