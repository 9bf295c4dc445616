SELECT country, COUNT(*) AS orders, ROUND(SUM(amount), 2) AS revenue
FROM consume.order_lines
GROUP BY country
