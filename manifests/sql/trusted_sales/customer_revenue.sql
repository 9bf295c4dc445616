SELECT c.customer_id, c.name, c.country, COUNT(*) AS orders, SUM(o.amount) AS revenue
FROM trusted.orders AS o
JOIN landing.customers AS c ON c.customer_id = o.customer_id AND c.load_date = @run_date
GROUP BY c.customer_id, c.name, c.country
