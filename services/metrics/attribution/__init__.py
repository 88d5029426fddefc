"""Attribution: leads and sales reported through the conversions API, credited to the click,
share and advocate that brought the customer within the organisation's attribution window."""
