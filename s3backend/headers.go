package s3backend

import (
	"context"

	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// bucketHeaders adds the headers that apply to every request on the bucket: requester pays and
// the expected bucket owner. (Each S3 input type has fields for them; one middleware keeps them
// from being repeated in every call.)
func bucketHeaders(cfg Config) func(*middleware.Stack) error {
	return func(stack *middleware.Stack) error {
		if !cfg.RequesterPays && cfg.ExpectedBucketOwner == "" {
			return nil
		}
		return stack.Build.Add(middleware.BuildMiddlewareFunc("s3mountBucketHeaders",
			func(ctx context.Context, in middleware.BuildInput, next middleware.BuildHandler) (middleware.BuildOutput, middleware.Metadata, error) {
				if req, ok := in.Request.(*smithyhttp.Request); ok {
					if cfg.RequesterPays {
						req.Header.Set("x-amz-request-payer", "requester")
					}
					if cfg.ExpectedBucketOwner != "" {
						req.Header.Set("x-amz-expected-bucket-owner", cfg.ExpectedBucketOwner)
					}
				}
				return next.HandleBuild(ctx, in)
			}), middleware.After)
	}
}
