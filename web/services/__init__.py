"""What the pages and the JSON API do: both call these and only render differently. One module
per noun, as the routes are: `concepts`, `submissions`, `cohort`, `queue`, `packages`, `users`.
Services never return HTTP: they raise the errors of `errors`, named by meaning, which the app
maps to statuses (`web.http`); and every change they make is committed in the service itself.

Every function that returns a submission or an exercise's files checks who is asking: a student
sees their own submissions and the student-visible half of an exercise; instructors and admins
see everything. A submission that is not yours is "not found", never "forbidden", so its
existence is not revealed either.
"""

from web.services import cohort, concepts, errors, packages, queue, submissions, users
from web.services.base import Web
from web.services.errors import ServiceError

__all__ = ["Web", "ServiceError", "cohort", "concepts", "errors", "packages", "queue", "submissions", "users"]
