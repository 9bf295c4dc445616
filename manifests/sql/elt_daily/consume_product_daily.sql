SELECT
  o.order_date,
  p.category,
  SUM(o.quantity) AS units,
  ROUND(SUM(o.quantity * p.unit_price), 2) AS revenue
FROM history.orders AS o
JOIN history.products AS p ON p.product_id = o.product_id AND p.valid_from = o.loaded_on
WHERE o.order_date = @run_date
GROUP BY o.order_date, p.category
