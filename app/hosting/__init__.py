"""Hosting independence: the fleet of machines the service runs on (`fleet`), what those
machines are told to install at first boot (`userdata`), database backups (`backup`), and
moving the whole service to another hosting vendor (`evacuate`).

Vendors are reached only through `providers/` interfaces (compute, DNS, storage), so each of
these works the same at any vendor a provider exists for."""
