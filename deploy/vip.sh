#!/bin/sh
# A virtual IPv4 address that follows the active node of a tandem pair.
#
# Use it as all three role hooks, with the same arguments on both nodes:
#
#   [hooks]
#   on_active  = "/usr/local/lib/tandem/vip.sh --address 10.0.0.10/24 --interface eth0"
#   on_passive = "/usr/local/lib/tandem/vip.sh --address 10.0.0.10/24 --interface eth0"
#   on_fault   = "/usr/local/lib/tandem/vip.sh --address 10.0.0.10/24 --interface eth0"
#
# tandemd runs hooks with `/bin/sh -c` and sets TANDEM_ROLE, TANDEM_TERM, TANDEM_PEER and
# TANDEM_REASON. With TANDEM_ROLE=active the script adds the address to the interface and sends
# gratuitous ARP (iputils `arping -U`), so that the hosts and the router of the LAN send to this
# node's MAC at once instead of when their neighbour entry expires. With any other role it
# removes the address. `on_passive` also runs when tandemd starts, which removes an address a
# crash left behind.
#
# Both directions are idempotent: adding an address that is present refreshes it (and sends
# the ARP again), removing one that is absent does nothing. Both are not errors.
#
# Settings, from the arguments or else from the environment:
#   --address A.B.C.D/PREFIX   VIP_ADDRESS     the virtual address with its prefix length
#   --interface NAME           VIP_INTERFACE   the interface on the clients' LAN
#   --arp-count N              VIP_ARP_COUNT   gratuitous ARPs to send, 1 s apart (default 3)
#   up | down                                  act without TANDEM_ROLE (by hand, for a test)
#
# Exit status: 0 done; 1 the change or the ARP failed; 2 bad or missing settings. tandemd logs
# the status and records it in a `hook` event; what the script prints goes to tandemd's log.
#
# Needs CAP_NET_ADMIN (ip addr) and CAP_NET_RAW (arping); deploy/tandemd.service grants both.
# POSIX sh: no bashisms, so it runs under dash as well.

set -u

program=vip.sh

say() {
    echo "$program: $*" >&2
}

usage_error() {
    say "$*"
    say "usage: $program [--address A.B.C.D/PREFIX] [--interface NAME] [--arp-count N] [up|down]"
    exit 2
}

address=${VIP_ADDRESS:-}
interface=${VIP_INTERFACE:-}
arp_count=${VIP_ARP_COUNT:-3}
action=

while [ $# -gt 0 ]; do
    case $1 in
        --address | --interface | --arp-count)
            [ $# -ge 2 ] || usage_error "$1 needs a value"
            case $1 in
                --address) address=$2 ;;
                --interface) interface=$2 ;;
                --arp-count) arp_count=$2 ;;
            esac
            shift 2
            ;;
        up | down)
            action=$1
            shift
            ;;
        -h | --help)
            awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
            exit 0
            ;;
        *)
            usage_error "unknown argument \"$1\""
            ;;
    esac
done

# Settings first: every problem is named before anything is changed.
[ -n "$address" ] || usage_error "no virtual address: pass --address A.B.C.D/PREFIX or set VIP_ADDRESS"
[ -n "$interface" ] || usage_error "no interface: pass --interface NAME or set VIP_INTERFACE"

ip=${address%/*}
prefix=${address#*/}
[ "$ip" != "$address" ] || usage_error "address \"$address\" has no prefix length; write it as $address/24 (the LAN's prefix)"
is_number() {
    case $1 in
        '' | *[!0-9]*) return 1 ;;
        *) return 0 ;;
    esac
}
is_number "$prefix" && [ "$prefix" -ge 1 ] && [ "$prefix" -le 32 ] \
    || usage_error "address \"$address\": prefix length \"$prefix\" is not between 1 and 32"
old_ifs=$IFS
IFS=.
# shellcheck disable=SC2086 # splitting on dots is the point
set -- $ip
IFS=$old_ifs
[ $# -eq 4 ] || usage_error "address \"$address\": \"$ip\" is not an IPv4 address A.B.C.D"
for octet in "$@"; do
    is_number "$octet" && [ "$octet" -le 255 ] \
        || usage_error "address \"$address\": \"$ip\" is not an IPv4 address A.B.C.D"
done
is_number "$arp_count" && [ "$arp_count" -ge 1 ] \
    || usage_error "arp count \"$arp_count\" is not a whole number of at least 1"

if [ -z "$action" ]; then
    case ${TANDEM_ROLE:-} in
        active) action=up ;;
        '') usage_error "no action: pass up or down, or run it as a tandem hook (TANDEM_ROLE set)" ;;
        *) action=down ;;
    esac
fi

context="role ${TANDEM_ROLE:-none}, term ${TANDEM_TERM:-none}, reason ${TANDEM_REASON:-none}"

command -v ip >/dev/null 2>&1 || { say "ip (iproute2) is not installed"; exit 1; }
ip link show dev "$interface" >/dev/null 2>&1 \
    || usage_error "interface \"$interface\" does not exist on this host (see \`ip link\`)"

# Whether the address is on the interface now, with any prefix length.
present() {
    ip -o -4 addr show dev "$interface" | grep -qF " inet $ip/"
}

case $action in
    up)
        command -v arping >/dev/null 2>&1 \
            || { say "arping (iputils-arping) is not installed; not adding $address"; exit 1; }
        # `replace` adds the address, or leaves it as it is when it is already there.
        if ! ip addr replace "$address" dev "$interface"; then
            say "could not add $address to $interface ($context)"
            exit 1
        fi
        say "$address is on $interface ($context)"
        # Unsolicited ARP requests for the address from itself: neighbours that know the
        # address take this node's MAC (a gratuitous ARP overrides the neighbour lock time).
        if ! arping -q -U -c "$arp_count" -I "$interface" -s "$ip" "$ip"; then
            say "arping on $interface failed: neighbours learn the new MAC only when their entry for $ip expires"
            exit 1
        fi
        say "sent $arp_count gratuitous ARP for $ip on $interface"
        ;;
    down)
        if present; then
            # Another run may remove it between the check and the removal: only fail if it
            # is still there afterwards.
            if ! ip addr del "$address" dev "$interface" && present; then
                say "could not remove $address from $interface ($context)"
                exit 1
            fi
            say "removed $address from $interface ($context)"
        else
            say "$address is not on $interface; nothing to remove ($context)"
        fi
        ;;
esac
exit 0
