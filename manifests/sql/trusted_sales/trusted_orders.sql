SELECT o.order_id, o.customer_id, o.product_id, o.quantity, p.unit_price, o.quantity * p.unit_price AS amount, o.order_date
FROM landing.orders AS o
JOIN landing.products AS p ON p.product_id = o.product_id AND p.load_date = o.load_date
WHERE o.load_date = @run_date
