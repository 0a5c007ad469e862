#!/bin/sh
# Try every provider end to end as a new user would: start an app on :3000 and
# `hookgate run` with examples/providers.toml, then for each route sign a body
# with `hookgate sign --curl` and run the printed curl command.
#   sh examples/try-providers.sh            (from the repository root)
set -eu
HOOKGATE=${HOOKGATE:-target/debug/hookgate}
[ -x "$HOOKGATE" ] || cargo build -q
cd "$(dirname "$0")/.."

# Throwaway secrets of the form each provider hands out.
export SVIX_SECRET=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
export SVIX_PUBLIC_KEY=whpk_1SiA4o9hyqTCpIqC5V9HUakiiaeACeqfZTInDBbOir4=
SVIX_SIGNING_KEY=whsk_6Xb/dCcHpPea21PS1N9VY/NZW723CEc77N4rJCubMbfVKIDij2HKpMKkioLlX0dRqSKJp4AJ6p9lMicMFs6Kvg==
export STDWH_SECRET=whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD
export LEVANTA_SECRET=levanta-app-secret LEAFLINK_SECRET=leaflink-key
export GITHUB_SECRET="It's a Secret to Everybody" STRIPE_SECRET=whsec_stripe_test_1234
export SHOPIFY_SECRET=shpss_0123 SLACK_SECRET=8f742231b10e8888abcd99yyyzzz85a5
export PADDLE_SECRET=pdl_ntfset_01hs0t3tw21j988db1pam5xg8m_GrOWLNef SQUARE_SECRET=Ibxx_5AKakO-3qeNVR61Dw
export ZOOM_SECRET=zoom-secret-token LINEAR_SECRET=lin_wh_0123 TWILIO_AUTH_TOKEN=12345
export GITLAB_TOKEN=gitlab-token INTERCOM_CLIENT_SECRET=intercom-secret
export ACME_SECRET=acme-secret ORBIT_SECRET=orbit-secret
export CLERK_WEBHOOK_SECRET=$SVIX_SECRET RESEND_WEBHOOK_SECRET=$SVIX_SECRET BREX_WEBHOOK_SECRET=$STDWH_SECRET
export META_APP_SECRET=meta-app-secret BITBUCKET_WEBHOOK_SECRET=bb-secret SENTRY_CLIENT_SECRET=sentry-secret
export TYPEFORM_SECRET=typeform-secret PAGERDUTY_WEBHOOK_SECRET=pd-secret LEMONSQUEEZY_SIGNING_SECRET=ls-secret
export RAZORPAY_WEBHOOK_SECRET=rzp-secret VERCEL_WEBHOOK_SECRET=vercel-secret ASANA_HOOK_SECRET=asana-secret
export DOCUSIGN_HMAC_KEY=docusign-key XERO_WEBHOOK_KEY=xero-key DROPBOX_APP_SECRET=dropbox-secret
export NOTION_VERIFICATION_TOKEN=secret_notion COINBASE_COMMERCE_SHARED_SECRET=cc-secret
export SEGMENT_SHARED_SECRET=segment-secret CALENDLY_SIGNING_KEY=calendly-key MUX_WEBHOOK_SECRET=mux-secret
export WORKOS_WEBHOOK_SECRET=workos-secret HUBSPOT_CLIENT_SECRET=hubspot-secret
export TWITCH_EVENTSUB_SECRET=twitch-secret ZENDESK_WEBHOOK_SECRET=zendesk-secret MAILGUN_SIGNING_KEY=mailgun-key
# Discord and SendGrid: the route holds the public key; signing needs the private one.
export DISCORD_PUBLIC_KEY=d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a
DISCORD_SIGNING_KEY=9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60$DISCORD_PUBLIC_KEY
export SENDGRID_VERIFICATION_KEY=MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEYP7UuiVanTHJYet0xjVtaMBJuJI7Yfps5mliLmDyn7Z5A/4QCLi8maQa6elWKLxk8vGyDC1+n1F3o8KU1EYimQ==
SENDGRID_SIGNING_KEY=MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgya+p2EW6dRZrXCFXZ7HWk05Qw9s26JsSe4piKxIPZyGhRANCAARg/tS6JVqdMclh63TGNW1owEm4kjth+mzmaWIuYPKftnkD/hAIuLyZpBrp6VYovGTy8bIMLX6fUXejwpTURiKZ

python3 -c '
import http.server
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        n = int(self.headers.get("content-length", 0)); self.rfile.read(n)
        self.send_response(200); self.send_header("content-type", "application/json"); self.end_headers()
        self.wfile.write(b"{\"app\":\"got it\"}")
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", 3000), H).serve_forever()' &
APP=$!
HOOKGATE_LOG=warn "$HOOKGATE" run --config examples/providers.toml &
GW=$!
trap 'kill $APP $GW 2>/dev/null' EXIT
sleep 1

fail=0
try() { # route body [extra sign args...]
    route=$1; body=$2; shift 2
    cmd=$(printf '%s' "$body" | "$HOOKGATE" sign --config examples/providers.toml --route "$route" \
        --url "http://127.0.0.1:8443/webhooks/$route" --curl "$@")
    status=$(sh -c "$cmd" | head -n1 | tr -d '\r')
    case $status in *" 200"*) r=ok ;; *) r=FAIL; fail=1 ;; esac
    printf '%-18s %-4s %s\n' "$route" "$r" "$status"
}
json='{"type":"demo.event","data":{"message":"hello from hookgate"}}'
for r in svix standard-webhooks levanta leaflink github stripe shopify slack paddle zoom square gitlab intercom \
    clerk resend brex meta bitbucket sentry typeform pagerduty lemonsqueezy razorpay vercel asana docusign xero \
    dropbox notion coinbase segment calendly mux workos hubspot twitch zendesk acme orbit; do
    try "$r" "$json"
done
try linear "{\"action\":\"create\",\"webhookTimestamp\":$(date +%s)000}"
try twilio 'AccountSid=AC0123&Body=hello+from+hookgate&From=%2B15005550006'
# Svix v1a: signed with the Ed25519 signing key, verified with the route's whpk_ public key.
try svix "$json" --secret "$SVIX_SIGNING_KEY"
try discord "$json" --secret "$DISCORD_SIGNING_KEY"
try sendgrid "$json" --secret "$SENDGRID_SIGNING_KEY"
# Mailgun signs inside the body: `sign --curl` sends the event wrapped with its signature.
try mailgun "$json"

# And a forgery for contrast: the same body signed with the wrong secret.
cmd=$(printf '%s' "$json" | "$HOOKGATE" sign --provider github --secret wrong \
    --url http://127.0.0.1:8443/webhooks/github --curl)
printf '%-18s %-4s %s\n' "github (forged)" "" "$(sh -c "$cmd" | head -n1 | tr -d '\r')"
exit $fail
