"""Invoices: numbering, VAT, the monthly run, credit notes, the document and who gets it."""
