"""The etcd tenant module: an etcd cluster and the Kamaji DataStore on it (reference §6.4)."""

from __future__ import annotations

from functions.domain import presets
from functions.services.base import Object, Outcome, meta

ETCD = "etcd-operator.cozystack.io/v1alpha2"
CERT_MANAGER = "cert-manager.io/v1"
VERSION = "3.6.11"
REPLICAS = 3
SIZE_BYTES = 4 * 2**30
LIMITS = {"cpu": "1000m", "memory": "512Mi"}
DNS_NAMES = ("etcd", "etcd.{ns}.svc", "*.etcd.{ns}.svc", "*.etcd-headless.{ns}.svc", "localhost")
INSTANCE = {"app.kubernetes.io/instance": "etcd"}


def _cert_manager(kind: str, name: str, ns: str, spec: Object) -> Object:
    return {"apiVersion": CERT_MANAGER, "kind": kind, "metadata": meta(name, ns), "spec": spec}


def _certificate(
    ns: str, name: str, issuer: str, usages: list[str], *, ca: bool, common: str
) -> Object:
    spec: Object = {
        "commonName": common,
        "secretName": f"{name}-tls",
        "subject": {"organizations": [ns], "organizationalUnits": ["etcd"]},
        "usages": usages,
        "privateKey": {
            "rotationPolicy": "Never" if ca else "Always",
            "algorithm": "RSA",
            "size": 4096,
        },
        "issuerRef": {"name": issuer, "kind": "Issuer", "group": "cert-manager.io"},
    }
    if ca:
        spec |= {"isCA": True, "duration": "87600h"}
    elif name != "etcd-client":
        spec |= {"dnsNames": [d.format(ns=ns) for d in DNS_NAMES], "ipAddresses": ["127.0.0.1"]}
    return _cert_manager("Certificate", name, ns, spec)


def compose_etcd(out: Outcome, ns: str) -> None:
    ratios = out.ctx.config.ratios
    out.add(
        "etcd-cluster",
        {
            "apiVersion": ETCD,
            "kind": "EtcdCluster",
            "metadata": meta("etcd", ns),
            "spec": {
                "version": VERSION,
                "replicas": REPLICAS,
                "storage": {"size": "4Gi"},
                "options": {
                    # 95% of the volume, as the Cozystack etcd chart computes it.
                    "quotaBackendBytes": round(SIZE_BYTES * 0.95),
                    "autoCompactionMode": "periodic",
                    "autoCompactionRetention": "5m",
                    "snapshotCount": 10000,
                },
                "resources": presets.sanitize(LIMITS, ratios),
                "additionalMetadata": {"labels": {"cozystack.io/service": "etcd"}},
                "tls": {
                    "client": {
                        "serverSecretRef": {"name": "etcd-server-tls"},
                        "operatorClientSecretRef": {"name": "etcd-client-tls"},
                    },
                    "peer": {"secretRef": {"name": "etcd-peer-tls"}},
                },
                "topologySpreadConstraints": [
                    {
                        "maxSkew": 1,
                        "topologyKey": "kubernetes.io/hostname",
                        "whenUnsatisfiable": "ScheduleAnyway",
                        "labelSelector": {"matchLabels": INSTANCE},
                    }
                ],
            },
        },
    )
    ca_usages = ["signing", "key encipherment", "cert sign"]
    out.add(
        "etcd-selfsigning-issuer",
        _cert_manager("Issuer", "etcd-selfsigning-issuer", ns, {"selfSigned": {}}),
    )
    out.add(
        "etcd-peer-ca",
        _certificate(
            ns, "etcd-peer-ca", "etcd-selfsigning-issuer", ca_usages, ca=True, common="etcd-peer-ca"
        ),
    )
    out.add(
        "etcd-ca",
        _certificate(
            ns, "etcd-ca", "etcd-selfsigning-issuer", ca_usages, ca=True, common="etcd-ca"
        ),
    )
    out.add(
        "etcd-peer-issuer",
        _cert_manager("Issuer", "etcd-peer-issuer", ns, {"ca": {"secretName": "etcd-peer-ca-tls"}}),
    )
    out.add(
        "etcd-issuer",
        _cert_manager("Issuer", "etcd-issuer", ns, {"ca": {"secretName": "etcd-ca-tls"}}),
    )
    both = ["client auth", "server auth", "signing", "key encipherment"]
    out.add(
        "etcd-server",
        _certificate(ns, "etcd-server", "etcd-issuer", both, ca=False, common="etcd-server"),
    )
    out.add(
        "etcd-peer",
        _certificate(
            ns,
            "etcd-peer",
            "etcd-peer-issuer",
            ["server auth", "client auth", "signing", "key encipherment"],
            ca=False,
            common="etcd-peer",
        ),
    )
    out.add(
        "etcd-client",
        _certificate(
            ns,
            "etcd-client",
            "etcd-issuer",
            ["signing", "key encipherment", "client auth"],
            ca=False,
            common="root",
        ),
    )
    out.add(
        "etcd-headless",
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta(
                "etcd-headless",
                ns,
                {
                    "app.kubernetes.io/name": "etcd",
                    "app.kubernetes.io/instance": "etcd",
                    "cozystack.io/service": "etcd",
                },
            ),
            "spec": {
                "clusterIP": "None",
                "publishNotReadyAddresses": True,
                "selector": {"etcd-operator.cozystack.io/cluster": "etcd"},
                "ports": [
                    {"name": "client", "port": 2379, "targetPort": 2379, "protocol": "TCP"},
                    {"name": "peer", "port": 2380, "targetPort": 2380, "protocol": "TCP"},
                ],
            },
        },
    )

    def secret_ref(name: str, key: str) -> Object:
        return {"secretReference": {"keyPath": key, "name": name, "namespace": ns}}

    out.add(
        "datastore",
        {
            "apiVersion": "kamaji.clastix.io/v1alpha1",
            "kind": "DataStore",
            "metadata": meta(ns),
            "spec": {
                "driver": "etcd",
                "endpoints": [f"etcd.{ns}.svc:2379"],
                "tlsConfig": {
                    "certificateAuthority": {
                        "certificate": secret_ref("etcd-ca-tls", "tls.crt"),
                        "privateKey": secret_ref("etcd-ca-tls", "tls.key"),
                    },
                    "clientCertificate": {
                        "certificate": secret_ref("etcd-client-tls", "tls.crt"),
                        "privateKey": secret_ref("etcd-client-tls", "tls.key"),
                    },
                },
            },
        },
    )
