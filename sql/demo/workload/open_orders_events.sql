SELECT o.id, o.total, e.kind, e.at
FROM shop.orders o JOIN shop.order_events e ON e.order_id = o.id
WHERE o.status = 'open' AND o.created_at > now() - interval '30 days';
