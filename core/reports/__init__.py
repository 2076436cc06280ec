"""Reports (issue 14): SLA compliance, work time, backlog and workload, and the billing
statement, computed in SQL over the stored ticket and work log figures.

Every report is a :class:`core.reports.base.Report`: typed columns and rows keyed by column,
so the console's tables and charts, the API's JSON and the CSV and XLSX exports all read one
shape. See ``docs/reports.md``.
"""
