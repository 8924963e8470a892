"""lead_score: a bank client's chance of subscribing to a term deposit if the campaign calls them."""

from skills.lead_score.skill import LeadScore

__all__ = ["LeadScore"]
