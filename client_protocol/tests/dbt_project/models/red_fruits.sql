select id, upper(name) as name, price * 2 as price_of_two
from {{ ref('fruits') }}
where colour = 'red'
