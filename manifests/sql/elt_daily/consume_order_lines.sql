-- Each order with the customer and product versions current on run_date.
WITH customers AS (
  SELECT * FROM history.customers WHERE valid_from <= @run_date
  QUALIFY ROW_NUMBER() OVER (PARTITION BY customer_id ORDER BY valid_from DESC) = 1
),
products AS (
  SELECT * FROM history.products WHERE valid_from <= @run_date
  QUALIFY ROW_NUMBER() OVER (PARTITION BY product_id ORDER BY valid_from DESC) = 1
)
SELECT
  o.order_id,
  o.order_date,
  c.customer_id,
  c.name AS customer_name,
  c.country,
  p.product_id,
  p.name AS product_name,
  p.category,
  o.quantity,
  ROUND(o.quantity * p.unit_price, 2) AS amount
FROM history.orders AS o
JOIN customers AS c USING (customer_id)
JOIN products AS p USING (product_id)
WHERE o.order_date = @run_date
