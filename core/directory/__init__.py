"""Who is who: clients, their domains and contacts, products, subcontractors, users."""
