"""Shared by the checks of 11_mnist and 12_fashion_mnist: models trained with the course's recipe
(``models``) and the exported programs through which the judge runs them without student code
(``program``)."""
