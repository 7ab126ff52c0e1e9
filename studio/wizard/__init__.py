"""The fine-tune wizard (AI & ML » Studio » Create Custom LLM » Fine-tune), Snowsight's steps in order:
base model; role and warehouse; where to store the model; its name; training table or view; prompt
column; completion column; validation table or skip; review and start.

The draft is kept server-side in the user's Django session (draft.py), so Back, Forward and a refresh
keep every choice; "Start over" clears it. Each step (steps.py) lists only what the service layer offers
the wizard's role (pickers.py: catalog.listing, what SHOW lists, and catalog.contents; privileges.*
decide roles, warehouses and schemas), previews data through jobs.data_preview, and the job is started
by finetune.create, the function FINETUNE('CREATE') calls, with the chosen role and warehouse
(views.py). Its refusals are shown on the step of the argument they name (routing.py).
"""
