"""The local stand-ins of the services the provider talks to, in one place (not shipped in the wheel).

Tests, benchmarks, the deployment harness and ``make demo`` all start them from here:

* :mod:`standins.servers`: moto's S3 server and the GCS emulator, in this process
  (:func:`~standins.servers.moto_server`, :func:`~standins.servers.gcs_server`) or in a process of
  their own (``python -m standins.servers moto|gcs|proxy ...``), and a TCP proxy that paces downloads;
* :mod:`standins.azurite`: Azurite (Azure Blob Storage), the npm package ``make azurite`` installs;
* :mod:`standins.processes`: the one launcher of a stand-in (or an Airflow component) as a process
  of its own session, its output in a file, and the command of each stand-in (the emulator too).

The FollowAnalytics emulator itself ships in the package (``airflow_provider_followanalytics.emulator``).
"""
